//! Reading a directory of Kubernetes YAML into what the local mesh runs.
//!
//! `rudder mesh up DIR` reads the `.yaml`/`.yml`/`.json` files directly in
//! DIR (not its subdirectories: `samples/bookinfo/rules/` holds rule variants
//! to apply later). Kinds it understands: Namespace, ServiceAccount, Service,
//! Deployment, Pod, and every `*.istio.io` object (route rules, handed to
//! pilot unchanged). Anything else is listed as ignored. Every error names the
//! file, the document and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A problem with the input YAML.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{file}: not valid YAML: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// The parser's message (line and column).
        message: String,
    },
    /// One field of one object is missing or wrong.
    #[error("{at}: {field}: {message}")]
    Field {
        /// `file document N (Kind ns/name)`.
        at: String,
        /// The field, e.g. `spec.replicas`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The directory holds nothing to run.
    #[error("{0}: no Deployment or Pod found (the local mesh needs something to run)")]
    Empty(PathBuf),
}

/// Where an object came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: String,
    /// 1-based document number inside it.
    pub document: usize,
    /// `Kind namespace/name`.
    pub object: String,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} document {} ({})",
            self.file, self.document, self.object
        )
    }
}

impl Origin {
    /// An error about `field` of this object.
    pub fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError::Field {
            at: self.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Port name (`http`), if any.
    pub name: Option<String>,
    /// The Service (VIP) port.
    pub port: u16,
    /// Where traffic goes on the pod.
    pub target: TargetPort,
}

/// A Service's `targetPort`: a number or a container port name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A named container port.
    Name(String),
}

/// A Service.
#[derive(Clone, Debug)]
pub struct ServiceDef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `spec.clusterIP` when the YAML sets one.
    pub cluster_ip: Option<Ipv4Addr>,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// The object as written (handed to pilot with the VIP filled in).
    pub object: Value,
    /// Where it came from.
    pub origin: Origin,
}

/// Something that runs pods: a Deployment (replicas of its template) or a Pod.
#[derive(Clone, Debug)]
pub struct Workload {
    /// `Deployment` or `Pod`.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// How many pods.
    pub replicas: u32,
    /// The pod template (`metadata` + `spec`).
    pub template: Value,
    /// Where it came from.
    pub origin: Origin,
}

/// An Istio object (route rule, destination rule...), passed to pilot as is.
#[derive(Clone, Debug)]
pub struct RuleObject {
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object.
    pub object: Value,
    /// Where it came from.
    pub origin: Origin,
}

impl RuleObject {
    /// The file name it gets in pilot's config dir: one file per object, so
    /// applying an object with the same kind, namespace and name replaces it
    /// (as `kubectl apply` does).
    pub fn file_name(&self) -> String {
        format!(
            "{}.{}.{}.json",
            self.kind.to_ascii_lowercase(),
            self.namespace,
            self.name
        )
    }
}

/// Everything read from a directory.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// Namespaces declared, with their labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// ServiceAccounts declared, as (namespace, name).
    pub service_accounts: BTreeSet<(String, String)>,
    /// Services.
    pub services: Vec<ServiceDef>,
    /// Deployments and Pods.
    pub workloads: Vec<Workload>,
    /// Istio objects.
    pub rules: Vec<RuleObject>,
    /// Objects of other kinds, one line each.
    pub ignored: Vec<String>,
}

/// The YAML/JSON files directly inside `dir`, sorted, hidden ones skipped.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read = |source| ManifestError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if path.is_file() && !name.starts_with('.') && matches!(ext, "yaml" | "yml" | "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every config file directly in `dir`.
pub fn load_dir(dir: &Path) -> Result<Manifest, ManifestError> {
    let mut manifest = Manifest::default();
    for file in files_in(dir)? {
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
            path: file.clone(),
            source,
        })?;
        manifest.add_text(&file.display().to_string(), &text)?;
    }
    if manifest.workloads.is_empty() {
        return Err(ManifestError::Empty(dir.to_path_buf()));
    }
    Ok(manifest)
}

/// Parses the Istio objects of rule files (for `--rules` and `mesh apply`);
/// other kinds are an error there.
pub fn load_rules(files: &[PathBuf]) -> Result<Vec<RuleObject>, ManifestError> {
    let mut manifest = Manifest::default();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read {
            path: file.clone(),
            source,
        })?;
        let name = file.display().to_string();
        let before = manifest.rules.len();
        manifest.add_text(&name, &text)?;
        let others = manifest.namespaces.len()
            + manifest.service_accounts.len()
            + manifest.services.len()
            + manifest.workloads.len()
            + manifest.ignored.len();
        if others > 0 {
            return Err(ManifestError::Field {
                at: name,
                field: "kind".into(),
                message:
                    "a rule file may hold only *.istio.io objects (route rules, destination rules)"
                        .into(),
            });
        }
        if manifest.rules.len() == before {
            return Err(ManifestError::Field {
                at: name,
                field: "kind".into(),
                message: "no Istio object in this file".into(),
            });
        }
    }
    Ok(manifest.rules)
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

/// `metadata.labels`-like map of strings at `field` (absent = empty).
pub fn string_map(
    v: Option<&Value>,
    origin: &Origin,
    field: &str,
) -> Result<BTreeMap<String, String>, ManifestError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(origin.err(
                    format!("{field}.{k}"),
                    format!("{other} is not a string (quote it)"),
                )),
            })
            .collect(),
        Some(other) => Err(origin.err(field, format!("{other} is not a map of strings"))),
    }
}

impl Manifest {
    /// Adds the documents of one file.
    pub fn add_text(&mut self, file: &str, text: &str) -> Result<(), ManifestError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Yaml {
                file: file.into(),
                message: e.to_string(),
            })?;
        for (i, doc) in docs.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            self.add_object(file, i + 1, doc)?;
        }
        Ok(())
    }

    fn add_object(&mut self, file: &str, document: usize, doc: Value) -> Result<(), ManifestError> {
        let mut origin = Origin {
            file: file.into(),
            document,
            object: "?".into(),
        };
        let Some(kind) = str_at(&doc, &["kind"]).map(String::from) else {
            return Err(origin.err("kind", "required"));
        };
        let Some(api_version) = str_at(&doc, &["apiVersion"]).map(String::from) else {
            return Err(origin.err("apiVersion", "required"));
        };
        if kind == "List" {
            let items = doc
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for item in items {
                self.add_object(file, document, item)?;
            }
            return Ok(());
        }
        let Some(name) = str_at(&doc, &["metadata", "name"]).map(String::from) else {
            origin.object = kind.clone();
            return Err(origin.err("metadata.name", "required"));
        };
        let namespace = str_at(&doc, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_string();
        origin.object = format!("{kind} {namespace}/{name}");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        match (group, kind.as_str()) {
            ("", "Namespace") => {
                origin.object = format!("Namespace {name}");
                let labels =
                    string_map(doc.pointer("/metadata/labels"), &origin, "metadata.labels")?;
                self.namespaces.insert(name, labels);
            }
            ("", "ServiceAccount") => {
                self.service_accounts.insert((namespace, name));
            }
            ("", "Service") => self.services.push(service(doc, name, namespace, origin)?),
            ("apps", "Deployment") => self
                .workloads
                .push(deployment(doc, name, namespace, origin)?),
            ("", "Pod") => {
                let template =
                    serde_json::json!({"metadata": doc.get("metadata"), "spec": doc.get("spec")});
                self.workloads.push(Workload {
                    kind: "Pod",
                    name,
                    namespace,
                    replicas: 1,
                    template,
                    origin,
                });
            }
            (g, _) if g.ends_with(".istio.io") => {
                self.rules.push(RuleObject {
                    kind,
                    namespace,
                    name,
                    object: doc,
                    origin,
                });
            }
            _ => self.ignored.push(format!(
                "{origin}: {api_version} {kind} is not used by the local mesh"
            )),
        }
        Ok(())
    }
}

/// An `apps/v1` Deployment: its replicas (0 to 16) and pod template, whose
/// labels must carry the selector's.
fn deployment(
    doc: Value,
    name: String,
    namespace: String,
    origin: Origin,
) -> Result<Workload, ManifestError> {
    let replicas = match doc.pointer("/spec/replicas") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= 16)
            .ok_or_else(|| {
                origin.err("spec.replicas", format!("{v} is not a number from 0 to 16"))
            })?,
    };
    let Some(template) = doc
        .pointer("/spec/template")
        .filter(|t| t.is_object())
        .cloned()
    else {
        return Err(origin.err("spec.template", "required"));
    };
    let labels = string_map(
        template.pointer("/metadata/labels"),
        &origin,
        "spec.template.metadata.labels",
    )?;
    let wanted = string_map(
        doc.pointer("/spec/selector/matchLabels"),
        &origin,
        "spec.selector.matchLabels",
    )?;
    if let Some((k, v)) = wanted.iter().find(|(k, v)| labels.get(*k) != Some(*v)) {
        return Err(origin.err(
            "spec.selector.matchLabels",
            format!("{k}={v} does not match the template's labels (Kubernetes would reject this Deployment)"),
        ));
    }
    Ok(Workload {
        kind: "Deployment",
        name,
        namespace,
        replicas,
        template,
        origin,
    })
}

fn port_number(v: &Value, origin: &Origin, field: &str) -> Result<u16, ManifestError> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| origin.err(field, format!("{v} is not a port number (1-65535)")))
}

fn service(
    doc: Value,
    name: String,
    namespace: String,
    origin: Origin,
) -> Result<ServiceDef, ManifestError> {
    let cluster_ip = match doc.pointer("/spec/clusterIP") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if s == "None" => {
            return Err(origin.err(
                "spec.clusterIP",
                "headless Services (None) are not supported by the local mesh",
            ))
        }
        Some(Value::String(s)) => {
            Some(s.parse().map_err(|_| {
                origin.err("spec.clusterIP", format!("{s:?} is not an IPv4 address"))
            })?)
        }
        Some(other) => return Err(origin.err("spec.clusterIP", format!("{other} is not a string"))),
    };
    let selector = string_map(doc.pointer("/spec/selector"), &origin, "spec.selector")?;
    let mut ports = Vec::new();
    let list = doc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        return Err(origin.err("spec.ports", "at least one port is required"));
    }
    for (i, p) in list.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if protocol != "TCP" {
            return Err(origin.err(
                format!("{field}.protocol"),
                format!("{protocol} is not supported (TCP only)"),
            ));
        }
        let port = port_number(
            p.get("port").unwrap_or(&Value::Null),
            &origin,
            &format!("{field}.port"),
        )?;
        let target = match p.get("targetPort") {
            None | Some(Value::Null) => TargetPort::Number(port),
            Some(Value::String(s)) => match s.parse::<u16>() {
                Ok(n) if n > 0 => TargetPort::Number(n),
                _ => TargetPort::Name(s.clone()),
            },
            Some(v) => TargetPort::Number(port_number(v, &origin, &format!("{field}.targetPort"))?),
        };
        let name = p.get("name").and_then(Value::as_str).map(String::from);
        ports.push(ServicePort { name, port, target });
    }
    Ok(ServiceDef {
        name,
        namespace,
        cluster_ip,
        selector,
        ports,
        object: doc,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, version: v1}}
    spec: {containers: [{name: web, command: [python3, app.py]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec: {hosts: [web], http: [{route: [{destination: {host: web}}]}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
"#;

    #[test]
    fn reads_every_kind_the_runner_uses() {
        let mut m = Manifest::default();
        m.add_text("sample.yaml", SAMPLE).unwrap();
        assert_eq!(m.namespaces["shop"]["istio-injection"], "enabled");
        assert_eq!(
            m.services[0].ports,
            vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target: TargetPort::Name("http".into())
            }]
        );
        assert_eq!(
            (m.workloads[0].name.as_str(), m.workloads[0].replicas),
            ("web-v1", 2)
        );
        assert_eq!(m.rules[0].file_name(), "virtualservice.shop.web.json");
        assert_eq!(m.ignored.len(), 1);
        assert!(
            m.ignored[0].contains("ConfigMap default/other"),
            "{:?}",
            m.ignored
        );
    }

    #[test]
    fn errors_name_file_document_and_field() {
        let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: a}\nspec: {replicas: -1, template: {}}\n";
        let err = Manifest::default()
            .add_text("d.yaml", bad)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "d.yaml document 1 (Deployment a/x): spec.replicas: -1 is not a number from 0 to 16"
        );
        let bad =
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 0}]}\n";
        let err = Manifest::default()
            .add_text("s.yaml", bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml document 1 (Service default/s): spec.ports[0].port"),
            "{err}"
        );
        let err = Manifest::default()
            .add_text("y.yaml", "a: [")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("y.yaml: not valid YAML"), "{err}");
        let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {app: other}}\n  template: {metadata: {labels: {app: x}}}\n";
        let err = Manifest::default()
            .add_text("m.yaml", bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec.selector.matchLabels: app=other does not match"),
            "{err}"
        );
    }
}
